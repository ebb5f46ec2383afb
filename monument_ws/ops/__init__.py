"""Operating endpoints, each off by default: Prometheus metrics, health checks, the admin page."""
