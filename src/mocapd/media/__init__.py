"""mocapd.media: facts about an uploaded video (the probe), shared by the API's admission and the pipeline."""
