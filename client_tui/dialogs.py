"""Small modal screens: a question, a line of text, a folder to choose, the help page."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class Confirm(ModalScreen[bool]):
    """Yes or no; Escape is no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.yes, variant="primary", id="yes")
                yield Button(self.no, id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class Prompt(ModalScreen[str | None]):
    """One line of text (a search, a path); Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChooseFolder(ModalScreen[str | None]):
    """Pick a name from a list (a folder to move into, an attachment to open)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, folders: list[str]) -> None:
        super().__init__()
        self.title_text, self.folders = title, folders

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-text")
            yield OptionList(*[Option(name, id=name) for name in self.folders], id="folders")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]Reading[/b]
  ↑ ↓ / click     move in the list; Enter or click opens
  Tab             next pane (folders, messages, reader)
  [ ]             previous / next page of a large folder
  /               search this folder (on the server); Esc clears
  g               refresh folders and messages
  w / o           save the attachments / open one in the viewer

[b]Managing[/b] (the selected messages, else the highlighted one)
  space           select / unselect; Esc clears the selection
  s               flag / unflag
  u               mark read / unread
  m               move to a folder
  d or Delete     delete (to Trash)

[b]Writing[/b]
  c               compose
  r / a / f       reply / reply to all / forward
  p               send a document to a patient (IHE XDM)
  k               health apps: browse, connect, revoke (patients)
  Ctrl+S          send (in the editor); Ctrl+O attach a file; Esc cancel
  Ctrl+D          save the draft in Drafts; Enter on a draft reopens it
  A               agenda (month and list); invitations: y accept, n decline,
                  t propose a new time

[b]Receipts[/b]
  A message that asks for a read receipt asks you first; nothing is sent
  without your yes. In the editor, tick delivery receipt (DSN) or read
  receipt (MDN) to ask for them.

  ?  this help      q  quit
"""


class Help(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("hygie-client — keys", classes="dialog-title")
            with VerticalScroll():
                yield Static(HELP)
            yield Button("Close", id="close")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
