"""The office web app at /office/ (issue 12): staff login, sessions and the start page.

Views only: the rules are in `hub/services/staff.py`. `install(app)` adds the routes.
"""

from hub.web.office.views import CLOCK, install

__all__ = ["CLOCK", "install"]
