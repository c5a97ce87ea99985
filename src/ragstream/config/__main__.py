"""``python -m ragstream.config``: print the configuration reference (``docs/configuration.md``)."""

from __future__ import annotations

import sys

from .reference import render

sys.stdout.write(render())
