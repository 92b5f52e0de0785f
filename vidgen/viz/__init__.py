"""Frame grids, browser-playable mp4 (``video.write_mp4``) and the comparison report."""
