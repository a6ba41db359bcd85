"""Export: stored takes stitched into one timeline and written as MP4, subtitles and OTIO."""
