"""Read-only views of a study and everything a user reads: one typed row per model, the front,
counts and status, tables (text, JSON, CSV), the plots, the study run's overview and
`compare`. Writes nothing to a study's stores; rendered files go to the tracking layer, which
uploads them. Imports stores and everything below; no Click."""
