"""Issue 14's forgetting explorer in the app: a per-task timeline of accuracy and flipped images with the
images a click away, and for CLR the zero-forgetting proof, linked from the accuracy matrix's badge; all from
a project reopened from disk."""

from __future__ import annotations

from clstudio.engine.views import SavedProject

from .conftest import trained_window


def test_fine_tune_timeline_shows_what_each_task_forgot_with_its_images(qtbot, tmp_path, folders, monkeypatch):
    window, _ = trained_window(qtbot, tmp_path, folders, monkeypatch, "finetune")
    assert window.matrix.proof_badge.isHidden()  # fine-tune can forget: there is no proof to show
    window.tabs.setCurrentWidget(window.forgetting)
    panel = window.forgetting
    view = SavedProject(window.session.folder)
    flip = view.flips()[0]  # stripes, after colours
    R = view.accuracy_matrix()
    assert (panel.table.rowCount(), panel.table.columnCount()) == (2, 2)
    assert panel.table.item(0, 0).text().endswith("trained")
    cell = panel.table.item(0, 1).text()
    assert cell == f"{R[1][0]:.1%}\n{len(flip['right_to_wrong'])} ✗ · {len(flip['wrong_to_right'])} ✓"
    assert panel.table.item(1, 0) is None  # colours did not exist before it was trained
    answers = view.answers("stripes", "colours")
    panel.show_cell(0, 1)
    for button, key in ((panel.lost_button, "right_to_wrong"), (panel.gained_button, "wrong_to_right")):
        assert button.text().startswith(f"{len(flip[key])} ") and button.isEnabled() == bool(flip[key])
        if flip[key]:
            button.click()
            assert panel.gallery.files() == [answers.files[k] for k in flip[key]]
    assert panel.proof.isHidden()
    window.close()


def test_clr_timeline_shows_no_flips_and_the_badge_links_to_the_proof(qtbot, tmp_path, folders, monkeypatch):
    window, _ = trained_window(qtbot, tmp_path, folders, monkeypatch, "clr")
    badge = window.matrix.proof_badge
    assert not badge.isHidden() and "1 earlier task(s) checked unchanged" in badge.text()
    badge.linkActivated.emit("proof")  # what a click on the badge's link does
    assert window.tabs.currentWidget() is window.forgetting
    panel = window.forgetting
    assert panel.table.item(0, 1).text().endswith("0 ✗ · 0 ✓")
    assert panel.summary.text().startswith("No earlier task lost")
    proof = SavedProject(window.session.folder).proof_status()["stripes"]
    assert "unchanged since trained" in panel.proof.text() and proof["weights_sha256"][:12] in panel.proof.text()
    panel.show_cell(0, 1)
    assert not panel.lost_button.isEnabled() and not panel.gained_button.isEnabled()
    assert panel.gallery.files() == [] and "No image of stripes changed" in panel.gallery.caption.text()
    window.close()
