"""The pipeline: fetch → resolve → validate → diff → write → record (DESIGN §1)."""
