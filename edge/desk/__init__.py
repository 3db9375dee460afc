"""The cash desk and counter: server, JSON API, web pages (templates, static), printing."""
