"""The PySide6 shell over the engine. It sends commands (worker jobs) and renders engine events; it never
holds or touches a model itself."""
