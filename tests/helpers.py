"""Shared test constants (imported by tests as `helpers`)."""

# Chromium flags for this closed-network machine: no background traffic, no sandbox as root.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
