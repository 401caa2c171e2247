"""The patient's and the practitioner's agenda (design.md §6, issue 9), fed by messages.

Calendar programs talk iMIP (RFC 6047): an e-mail carrying a ``text/calendar`` part whose
iCalendar object (RFC 5545) is an iTIP message (RFC 5546) with a METHOD. This package holds
what does not touch the network nor the database:

- :mod:`agenda.event`: one stored component (VEVENT) and the properties the rules read
  (UID, SEQUENCE, DTSTAMP, RECURRENCE-ID, ORGANIZER, ATTENDEE/PARTSTAT);
- :mod:`agenda.itip`: parsing an iTIP message and the scheduling rules of RFC 5546 §3.2
  (REQUEST, REPLY, ADD, CANCEL, REFRESH, COUNTER, DECLINECOUNTER), as pure functions from
  (message, what the agenda holds) to the rows to write;
- :mod:`agenda.recurrence`: occurrences of an event (RRULE, RDATE, EXDATE, RECURRENCE-ID
  overrides) in its own time zone, so 09:00 Europe/Paris stays 09:00 across DST;
- :mod:`agenda.freebusy`: busy periods and the VFREEBUSY REPLY (RFC 5546 §3.3.2);
- :mod:`agenda.imip`: the messages Hygie writes (RFC 6047 §2).

Parsing and writing go through the ``icalendar`` library.
"""
