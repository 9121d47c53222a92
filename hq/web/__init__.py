"""HQ's web app: the factory, the JSON API, event intake, the dashboard and its users."""
