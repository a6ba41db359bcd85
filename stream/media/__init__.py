"""Media writers: MP4 (H.264 + AAC) and subtitles, stamped from frame and sample counts."""
