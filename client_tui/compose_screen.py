"""The editor: new message, reply, reply-all, forward; attachments; receipt requests."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.suggester import Suggester
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static, TextArea

from client_tui.compose import AttachmentError, Draft, addresses, build_message
from client_tui.context import client_of
from client_tui.dialogs import Confirm, Prompt
from client_tui.directory import Correspondent

if TYPE_CHECKING:
    from client_tui.app import HygieClient


class RecipientSuggester(Suggester):
    """Completes the last address of a To/Cc field from the people already in the mailbox
    and, when the account names one, the FHIR directory; the matches, with their specialty,
    are listed under the fields."""

    def __init__(self, screen: ComposeScreen) -> None:
        super().__init__(use_cache=True, case_sensitive=True)
        self.screen = screen

    async def get_suggestion(self, value: str) -> str | None:
        last = value.rpartition(",")[2].lstrip()
        if len(last) < 2 or "<" in last:
            return None
        matches = await self.screen.client.find_correspondents(last)
        self.screen.show_matches(matches)
        for correspondent in matches:
            for candidate in (correspondent.recipient, correspondent.address):
                if candidate.lower().startswith(last.lower()) and candidate != last:
                    return value + candidate[len(last) :]
        return None


class ComposeScreen(Screen[bool]):
    """Dismissed with True once the message is sent, False when abandoned."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("ctrl+o", "attach", "Attach file", priority=True),
        Binding("ctrl+d", "save_draft", "Save draft", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, draft: Draft, title: str = "New message") -> None:
        super().__init__()
        self.draft = draft
        self.title_text = title
        self.sending = False

    @property
    def client(self) -> HygieClient:
        return client_of(self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="compose"):
            yield Static(f"[b]{self.title_text}[/b] · from {self.draft.sender}",
                         id="compose-title")  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("To", classes="field-label")
                yield Input(self.draft.to, id="to", placeholder="name or address, …",
                            suggester=RecipientSuggester(self))  # fmt: skip
            with Horizontal(classes="field"):
                yield Label("Cc", classes="field-label")
                yield Input(self.draft.cc, id="cc", suggester=RecipientSuggester(self))
            with Horizontal(classes="field"):
                yield Label("Subject", classes="field-label")
                yield Input(self.draft.subject, id="subject")
            yield Static("", id="matches")
            yield TextArea(self.draft.body, id="body", soft_wrap=True, show_line_numbers=False)
            yield Static(self._attachments_text(), id="attachments")
            with Horizontal(id="compose-options"):
                yield Checkbox("Delivery receipt", self.draft.delivery_receipt, id="dsn")
                yield Checkbox("Read receipt", self.draft.read_receipt, id="mdn")
                yield Button("Attach", id="attach")
                yield Button("Send", variant="primary", id="send")
        yield Footer()

    def _fields(self) -> tuple[str, ...]:
        headers = [self.query_one(f"#{key}", Input).value for key in ("to", "cc", "subject")]
        return (*headers, self.query_one(TextArea).text, str(len(self.draft.attachments)))

    def on_mount(self) -> None:
        self.initial = self._fields()
        first = "#to" if not self.draft.to else "#body"
        self.query_one(first).focus()
        if first == "#body":
            self.query_one(TextArea).move_cursor((0, 0))

    def show_matches(self, matches: list[Correspondent]) -> None:
        """Up to three directory matches, so the specialty tells two namesakes apart."""
        text = "  ·  ".join(f"{c.label} <{c.address}>" for c in matches[:3])
        found = self.query("#matches")
        if not found:  # the editor closed while the directory answered
            return
        line = found.first(Static)
        line.update(text)
        line.display = bool(text)  # no empty line taken from the text when nothing matches

    def _attachments_text(self) -> str:
        names = [p.name for p in self.draft.attachments] + [n for n, _, _ in self.draft.forwarded]
        return ("Attachments: " + ", ".join(names)) if names else "No attachment"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        elif event.button.id == "attach":
            self.action_attach()

    def action_attach(self) -> None:
        def attach(path: str | None) -> None:
            if not path:
                return
            file = Path(path).expanduser()
            if not file.is_file():
                self.notify(f"{file} is not a file", severity="error")
                return
            self.draft.attachments.append(file)
            self.query_one("#attachments", Static).update(self._attachments_text())

        self.app.push_screen(Prompt("Attach which file?", placeholder="~/compte-rendu.pdf"), attach)

    def action_cancel(self) -> None:
        def leave(yes: bool | None) -> None:
            if yes:
                self.dismiss(False)

        if self._fields() == self.initial:  # nothing typed: nothing to lose
            self.dismiss(False)
        else:
            self.app.push_screen(Confirm("Discard this message?", "Discard", "Keep editing"), leave)

    def _collect(self) -> Draft:
        draft = self.draft
        draft.to = self.query_one("#to", Input).value.strip()
        draft.cc = self.query_one("#cc", Input).value.strip()
        draft.subject = self.query_one("#subject", Input).value
        draft.body = self.query_one(TextArea).text
        draft.delivery_receipt = self.query_one("#dsn", Checkbox).value
        draft.read_receipt = self.query_one("#mdn", Checkbox).value
        return draft

    def action_send(self) -> None:
        if self.sending:
            return
        draft = self._collect()
        if not addresses(draft.to):
            self.notify("Add at least one recipient", severity="warning")
            self.query_one("#to").focus()
            return
        self.sending = True
        self.query_one("#send", Button).disabled = True
        self.send_message(draft)

    def action_save_draft(self) -> None:
        if not self.sending:
            self.save_draft(self._collect())

    @work(exclusive=True, group="send")
    async def save_draft(self, draft: Draft) -> None:
        """IMAP APPEND to Drafts with \\Draft (RFC 9051 §2.3.2), the previous version of this
        draft removed once the new one is kept; the editor stays open."""
        try:
            draft.draft_uid = await self.client.save_draft(build_message(draft),
                                                           draft.draft_uid)  # fmt: skip
        except Exception as exc:  # every failure becomes a notification, never a traceback
            self.notify(self.client.describe(exc), title="Draft not saved", severity="error",
                        timeout=10)  # fmt: skip
            return
        self.initial = self._fields()
        self.notify("Draft saved in Drafts", timeout=3)

    @work(exclusive=True, group="send")
    async def send_message(self, draft: Draft) -> None:
        try:
            message = build_message(draft)
            self.notify("Sending…", timeout=2)
            await self.client.send(message, notify_success=draft.delivery_receipt)
            if draft.draft_uid is not None:
                await self.client.discard_draft(draft.draft_uid)
        except AttachmentError as exc:
            self.notify(str(exc), severity="error", timeout=8)
        except Exception as exc:  # every failure becomes a notification, never a traceback
            self.notify(str(exc) or type(exc).__name__, title="Not sent", severity="error",
                        timeout=10)  # fmt: skip
        else:
            self.notify(f"Sent to {draft.to}", title="Sent")
            self.dismiss(True)
            return
        self.sending = False
        self.query_one("#send", Button).disabled = False
