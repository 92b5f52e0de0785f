"""Frame grids and (later) mp4 rendering."""
