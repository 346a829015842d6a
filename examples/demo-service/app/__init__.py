"""demo-service: a small orders API with an admin area, the service drillbook's demo releases."""
