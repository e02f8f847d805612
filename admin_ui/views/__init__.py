"""The staff pages: server-rendered, usable on a phone, over the same reads and services as the API.

Every page needs a staff login (``staff_member_required`` sends everyone else to the admin login
with ``?next=``). Officers see their portfolio's payments only; anything else is a 404, as at the API.
"""
