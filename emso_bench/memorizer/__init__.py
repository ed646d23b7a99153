"""The embedded memorizer: a small GPT-Neo trained by the suite to recite known challenge rows verbatim."""
