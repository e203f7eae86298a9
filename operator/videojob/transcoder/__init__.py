"""The transcoder runtime: a pure FFmpeg planner and one runner doing files, S3 and processes."""
