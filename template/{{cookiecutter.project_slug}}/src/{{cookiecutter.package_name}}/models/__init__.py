"""Models of this project, one module per task."""
