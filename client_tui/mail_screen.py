"""The main screen: folders on the left, the message list above the reader on the right."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, Tree
from textual.widgets.data_table import RowKey

from client_tui.agenda_screen import (
    AgendaScreen,
    answer_text,
    ask_new_start,
    send_answer,
    send_counter,
)
from client_tui.appointments import ANSWERS, Appointment, invitation_in
from client_tui.compose import (
    Attachment,
    Draft,
    ReadMessage,
    build_mdn,
    describe_xdm,
    draft_from_message,
    forward_draft,
    is_xdm,
    read_message,
    reply_draft,
    save_attachment,
)
from client_tui.compose_screen import ComposeScreen
from client_tui.context import client_of
from client_tui.dialogs import ChooseFolder, Confirm, Help, Prompt
from client_tui.imap import Folder, MessageSummary
from client_tui.session import find_special

if TYPE_CHECKING:
    from client_tui.app import HygieClient

PAGE_SIZE = 100  # rows fetched per UID FETCH: one screenful or ten, never the whole folder
MDN_SENT = "$MDNSent"  # RFC 3503: set once the user has answered a receipt request


def short_date(date: datetime | None, now: datetime | None = None) -> str:
    """Today's time, else the day: the list stays narrow at 80 columns."""
    if date is None:
        return ""
    now = now or datetime.now(date.tzinfo)
    local = date
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if local.year == now.year:
        return local.strftime("%d %b")
    return local.strftime("%d/%m/%y")


def display_name(address: str) -> str:
    name, addr = parseaddr(address)
    return name or addr or address


class MessageTable(DataTable[str | Text]):
    """The message list: one click opens a message, as in other mail programs (a plain
    DataTable needs a second click on the highlighted row)."""

    async def _on_click(self, event: events.Click) -> None:
        # Textual calls DataTable._on_click after this one (handlers run down the MRO): it
        # moves the cursor, and posts RowSelected only for a click on the highlighted row.
        row = event.style.meta.get("row", -1)
        if isinstance(row, int) and 0 <= row < self.row_count and row != self.cursor_row:
            self.post_message(DataTable.RowSelected(self, row, self.ordered_rows[row].key))


class MailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "compose", "Compose"),
        Binding("r", "reply", "Reply"),
        Binding("a", "reply_all", "Reply all", show=False),
        Binding("f", "forward", "Forward", show=False),
        Binding("p", "to_patient", "To patient", show=False),
        Binding("k", "catalogue", "Apps", show=False),
        Binding("s", "flag", "Flag"),
        Binding("u", "toggle_read", "Read/unread"),
        Binding("m", "move", "Move"),
        Binding("d,delete", "delete", "Delete"),
        Binding("space", "mark", "Select", show=False),
        Binding("slash", "search", "Search"),
        Binding("w", "save_attachments", "Save att.", show=False),
        Binding("o", "open_attachment", "Open att.", show=False),
        Binding("g", "refresh", "Refresh", show=False),
        Binding("left_square_bracket", "page(1)", "Older", show=False),
        Binding("right_square_bracket", "page(-1)", "Newer", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("A", "agenda", "Agenda"),
        Binding("y", "answer('ACCEPTED')", "Accept", show=False),
        Binding("n", "answer('DECLINED')", "Decline", show=False),
        Binding("t", "propose", "New time", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.folders: list[Folder] = []
        self.folder = "INBOX"
        self.all_uids: list[int] = []
        self.page = 0  # 0 is the newest page
        self.search_text = ""
        self.summaries: dict[int, MessageSummary] = {}
        self.opened: tuple[int, ReadMessage] | None = None
        self.sort_column = "date"
        self.sort_reverse = True
        self.marked: set[int] = set()  # selected with space, for actions on several at once
        self.invitation: Appointment | None = None  # the open message's, if it carries one
        self.answered: dict[str, str] = {}  # UID → the answer sent from this screen

    def c(self, name: str) -> str:
        """A theme colour for Rich styles (Rich does not read Textual's ``$variables``)."""
        value = self.app.get_css_variables().get(name, "")
        return value if value.startswith("#") else ""

    @property
    def client(self) -> HygieClient:
        return client_of(self.app)

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="topbar")
        with Horizontal(id="main"):
            tree: Tree[str] = Tree("Folders", id="folders")
            tree.show_root = False
            tree.guide_depth = 2
            yield tree
            with Vertical(id="right"):
                yield MessageTable(id="messages", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="reader"):
                    yield Static("", id="reader-headers")
                    yield Static("", id="reader-attachments")
                    yield Static("Select a message and press Enter.", id="reader-body",
                                 markup=False)  # fmt: skip
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#messages", DataTable)
        table.add_column("", key="state", width=4)
        table.add_column("Date", key="date", width=9)
        table.add_column("From", key="from", width=20)
        table.add_column("Subject", key="subject")
        table.focus()
        self.update_topbar()
        self.refresh_all()
        self.client.start_idle()

    def update_topbar(self, note: str = "") -> None:
        account = self.client.account_address
        folder = next((f for f in self.folders if f.name == self.folder), None)
        unread = f" · {folder.unseen} unread" if folder and folder.unseen else ""
        total = len(self.all_uids)
        if total > PAGE_SIZE:
            newest = total - self.page * PAGE_SIZE
            oldest = max(1, newest - PAGE_SIZE + 1)
            paging = f" · {oldest}–{newest} of {total}"
        else:
            paging = f" · {total} message{'s' if total != 1 else ''}"
        search = f" · search “{self.search_text}”" if self.search_text else ""
        if self.marked:
            search += f" · {len(self.marked)} selected"
        text = Text.assemble(
            ("Hygie ", f"bold {self.c('accent')}"),
            (f"{account}  ", ""),
            (self.folder, "bold"),
            (unread + paging + search, ""),
            ("  " + note if note else "", "italic"),
        )
        self.query_one("#topbar", Static).update(text)

    # -- folders ---------------------------------------------------------------------------------

    def fill_tree(self) -> None:
        tree: Tree[str] = self.query_one("#folders", Tree)
        tree.clear()
        nodes: dict[str, object] = {}
        cursor_line = 0
        for index, folder in enumerate(self.folders):
            parent = tree.root
            label_name = folder.name
            if folder.delimiter and folder.delimiter in folder.name:
                head, _, label_name = folder.name.rpartition(folder.delimiter)
                found = nodes.get(head)
                if found is not None:
                    parent = found  # type: ignore[assignment]
            label = Text(label_name, style="bold" if folder.unseen else "")
            if folder.unseen:
                label.append(f" ({folder.unseen})", style=f"bold {self.c('accent')}")
            node = parent.add_leaf(label, data=folder.name)
            nodes[folder.name] = node
            if folder.name == self.folder:
                cursor_line = index
        tree.root.expand_all()
        tree.cursor_line = cursor_line

    @on(Tree.NodeSelected, "#folders")
    def folder_selected(self, event: Tree.NodeSelected[str]) -> None:
        name = event.node.data
        if name and name != self.folder:
            self.folder = name
            self.search_text = ""
            self.page = 0
            self.marked.clear()
            self.load_folder()
            self.client.idle_on(name)

    # -- loading ---------------------------------------------------------------------------------

    @work(exclusive=True, group="load")
    async def refresh_all(self) -> None:
        try:
            self.folders = await self.client.reader.folders()
            self.fill_tree()
            await self._load_folder()
        except Exception as exc:  # shown, never a traceback
            self.client.report(exc)

    @work(exclusive=True, group="load")
    async def load_folder(self) -> None:
        try:
            await self._load_folder()
        except Exception as exc:
            self.client.report(exc)

    async def _load_folder(self) -> None:
        reader = self.client.reader
        await reader.select(self.folder)
        if self.search_text:
            self.all_uids = await reader.search_text(self.search_text)
        else:
            self.all_uids = await reader.uids()
        await self._load_page()

    async def _load_page(self, page: int | None = None) -> None:
        """Fetch and show page ``page`` (default: the current one). ``self.page`` changes only
        once the page's rows are here, so the top bar never announces rows not yet shown."""
        total = len(self.all_uids)
        wanted = self.page if page is None else page
        wanted = max(0, min(wanted, (total - 1) // PAGE_SIZE if total else 0))
        end = total - wanted * PAGE_SIZE
        page_uids = self.all_uids[max(0, end - PAGE_SIZE) : end]
        summaries = await self.client.reader.summaries(page_uids)
        self.page = wanted
        self.summaries = {s.uid: s for s in summaries}
        self.client.remember_correspondents([s.sender for s in summaries]
                                            + [s.to for s in summaries])  # fmt: skip
        table = self.query_one("#messages", DataTable)
        keep = self._highlighted_uid()
        table.clear()
        for summary in sorted(summaries, key=lambda s: s.uid, reverse=True):
            table.add_row(*self._cells(summary), key=str(summary.uid))
        self._sort()
        if keep is not None and str(keep) in {k.value for k in table.rows}:
            table.move_cursor(row=table.get_row_index(str(keep)))
        self.update_topbar()
        if not summaries:
            self.show_empty()
        elif self.opened is not None and self.opened[0] not in self.summaries:
            self.show_placeholder()  # the open message left the list (other folder, search)

    def show_placeholder(self) -> None:
        self.opened = None
        self.query_one("#reader-headers", Static).update("")
        self.query_one("#reader-attachments", Static).update("")
        self.query_one("#reader-body", Static).update("Select a message and press Enter.")

    def show_empty(self) -> None:
        self.opened = None
        self.query_one("#reader-headers", Static).update("")
        self.query_one("#reader-attachments", Static).update("")
        empty = "No message matches." if self.search_text else "No message in this folder."
        self.query_one("#reader-body", Static).update(empty)

    def _cells(self, summary: MessageSummary) -> tuple[Text, str, str, Text]:
        blank = "\u00a0"  # DataTable trims plain spaces, which would shift the marks
        state = Text()
        state.append(
            "✓" if summary.uid in self.marked else blank, style=f"bold {self.c('primary')}"
        )
        state.append("●" if not summary.seen else blank, style=f"bold {self.c('accent')}")
        state.append("★" if summary.flagged else blank, style=f"{self.c('warning')}")
        state.append("@" if summary.has_attachment else blank, style=f"{self.c('secondary')}")
        style = "bold" if not summary.seen else ""
        who = summary.to if self._is_sent_folder() else summary.sender
        subject = Text(summary.subject or "(no subject)", style=style)
        return state, short_date(summary.date), display_name(who), subject

    def _is_sent_folder(self) -> bool:
        folder = next((f for f in self.folders if f.name == self.folder), None)
        return folder is not None and folder.special_use in ("\\Sent", "\\Drafts")

    def _update_row(self, uid: int) -> None:
        summary = self.summaries.get(uid)
        table = self.query_one("#messages", DataTable)
        if summary is None or str(uid) not in {k.value for k in table.rows}:
            return
        for column, value in zip(("state", "date", "from", "subject"), self._cells(summary),
                                 strict=True):  # fmt: skip
            table.update_cell(str(uid), column, value)

    def _highlighted_uid(self) -> int | None:
        table = self.query_one("#messages", DataTable)
        if table.row_count == 0:
            return None
        try:
            key: RowKey = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # the cursor sits outside the rows while the table refills
            return None
        return int(key.value) if key.value else None

    # -- sorting ---------------------------------------------------------------------------------

    @on(DataTable.HeaderSelected, "#messages")
    def header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == "state":
            return
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, column == "date"
        self._sort()

    def _sort(self) -> None:
        """Date sorts on the parsed date (the cell shows a short form); text columns on text."""
        table = self.query_one("#messages", DataTable)
        if self.sort_column == "date":
            order = sorted(
                self.summaries.values(),
                key=lambda s: (s.date.timestamp() if s.date else 0.0, s.uid),
                reverse=self.sort_reverse,
            )
            self._reorder(table, [s.uid for s in order])
        else:
            table.sort(self.sort_column, key=lambda cell: str(cell).lower(),
                       reverse=self.sort_reverse)  # fmt: skip

    def _reorder(self, table: DataTable[str | Text], uids: list[int]) -> None:
        keep = self._highlighted_uid()
        table.clear()
        for uid in uids:
            table.add_row(*self._cells(self.summaries[uid]), key=str(uid))
        if keep is not None and keep in self.summaries:
            table.move_cursor(row=table.get_row_index(str(keep)))

    # -- reading ---------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#messages")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        if not event.row_key.value:
            return
        if self._is_drafts_folder():
            self.open_draft(int(event.row_key.value))  # a draft opens in the editor
        else:
            self.open_message(int(event.row_key.value))

    def _is_drafts_folder(self) -> bool:
        return self.folder == find_special(self.folders, "\\Drafts", "Drafts")

    @work(exclusive=True, group="open")
    async def open_draft(self, uid: int) -> None:
        try:
            raw = await self.client.reader.fetch_message(uid, mark_seen=False)
        except Exception as exc:
            self.client.report(exc)
            return
        draft = draft_from_message(read_message(raw), self.client.account_address, uid)

        def closed(_: bool | None) -> None:
            self.load_folder()  # the draft was sent, replaced by a newer version, or kept

        self.app.push_screen(ComposeScreen(draft, "Draft"), closed)

    @work(exclusive=True, group="open")
    async def open_message(self, uid: int) -> None:
        try:
            raw = await self.client.reader.fetch_message(uid)
        except Exception as exc:
            self.client.report(exc)
            return
        message = read_message(raw)
        self.opened = (uid, message)
        self.show_message(message)
        summary = self.summaries.get(uid)
        if summary is not None and not summary.seen:
            summary.flags.add("\\Seen")
            self._update_row(uid)
            self._adjust_unseen(self.folder, -1)
        if message.mdn_to and summary is not None and MDN_SENT not in summary.flags:
            await self.ask_receipt(uid, message)

    def show_message(self, message: ReadMessage) -> None:
        headers = Text()
        for label, value in (
            ("From", message.sender), ("To", message.to), ("Cc", message.cc),
            ("Date", message.date), ("Subject", message.subject),
        ):  # fmt: skip
            if value:
                headers.append(f"{label:<9}", style=f"{self.c('secondary')}")
                headers.append(value + "\n", style="bold" if label == "Subject" else "")
        self.query_one("#reader-headers", Static).update(headers)
        attachments = Text()
        for index, attachment in enumerate(message.attachments, 1):
            attachments.append(f"@ {index}. {attachment.filename}", style=self.c("accent"))
            attachments.append(f"  {attachment.content_type}, {attachment.size_text}\n",
                               style="dim")  # fmt: skip
            if is_xdm(attachment.filename):
                for label, value in describe_xdm(attachment.data):
                    attachments.append(f"     {label}: ", style=self.c("secondary"))
                    attachments.append(f"{value}\n")
        if message.attachments:
            attachments.append("w saves the attachments, o opens one\n", style="italic")
        self.invitation = invitation_in(message.raw, self.client.account_address)
        if self.invitation is not None and self.invitation.uid in self.answered:
            self.invitation = replace(self.invitation, partstat=self.answered[self.invitation.uid])
        if self.invitation is not None:
            attachments.append_text(self._invitation_text(self.invitation))
        self.query_one("#reader-attachments", Static).update(attachments)
        self.query_one("#reader-body", Static).update(message.text or "(no text)")
        self.query_one("#reader", VerticalScroll).scroll_home(animate=False)

    def _invitation_text(self, invitation: Appointment) -> Text:
        text = Text()
        text.append("Invitation ", style=f"bold {self.c('accent')}")
        text.append(f"{invitation.summary}", style="bold")
        text.append(f" · {invitation.start:%d/%m/%Y %H:%M}–{invitation.end:%H:%M}")
        if invitation.location:
            text.append(f" · {invitation.location}")
        text.append(f"\n  your answer: {answer_text(invitation)} — y accept · n decline · "
                    "t propose a new time\n", style="italic")  # fmt: skip
        return text

    def action_agenda(self) -> None:
        self.app.push_screen(AgendaScreen(self.client.now().date()))

    def action_answer(self, partstat: str) -> None:
        if self.invitation is None:
            self.notify("The open message is not an invitation", severity="warning")
            return
        self.answer_invitation(self.invitation, partstat)

    @work(exclusive=True, group="answer")
    async def answer_invitation(self, invitation: Appointment, partstat: str) -> None:
        try:
            await send_answer(self.client, invitation, partstat)
        except Exception as exc:
            self.client.report(exc)
            return
        self.notify(f"Answer “{ANSWERS[partstat]}” sent to {invitation.organizer}")
        self.answered[invitation.uid] = partstat
        if self.opened is not None and self.invitation is invitation:
            self.show_message(self.opened[1])

    def action_propose(self) -> None:
        invitation = self.invitation
        if invitation is None:
            self.notify("The open message is not an invitation", severity="warning")
            return
        ask_new_start(self, invitation, lambda start: self.counter(invitation, start))

    @work(exclusive=True, group="answer")
    async def counter(self, invitation: Appointment, start: datetime) -> None:
        try:
            await send_counter(self.client, invitation, start)
        except Exception as exc:
            self.client.report(exc)
            return
        self.notify(f"New time proposed to {invitation.organizer}")

    async def ask_receipt(self, uid: int, message: ReadMessage) -> None:
        """RFC 8098 §2.1: a receipt goes only with the user's consent; either answer is
        remembered with $MDNSent (RFC 3503) so the question comes once."""
        who = display_name(message.mdn_to)
        question = f"{who} asks for a read receipt for “{message.subject}”.\nSend it?"
        agreed = await self.app.push_screen_wait(Confirm(question, "Send receipt", "Not now"))
        try:
            if agreed:
                await self.client.send(build_mdn(message, self.client.account_address),
                                       keep_copy=False)  # fmt: skip
                self.notify(f"Read receipt sent to {message.mdn_to}")
            await self.client.reader.store_flags([uid], MDN_SENT)
            summary = self.summaries.get(uid)
            if summary is not None:
                summary.flags.add(MDN_SENT)
        except Exception as exc:
            self.client.report(exc)

    def _adjust_unseen(self, folder_name: str, delta: int) -> None:
        self.folders = [
            Folder(f.name, f.flags, f.delimiter, f.messages, max(0, f.unseen + delta))
            if f.name == folder_name else f
            for f in self.folders
        ]  # fmt: skip
        self.fill_tree()
        self.update_topbar()

    # -- new mail --------------------------------------------------------------------------------

    def new_mail(self, folder: str = "INBOX") -> None:
        """Called by the IDLE worker: refresh the counts and, if it is showing, the folder."""
        if not self.search_text and folder == self.folder:
            self.refresh_all()

    # -- managing --------------------------------------------------------------------------------

    def _targets(self) -> list[int]:
        """The messages selected with space, else the highlighted one."""
        marked = sorted(uid for uid in self.marked if uid in self.summaries)
        if marked:
            return marked
        uid = self._highlighted_uid()
        if uid is None:
            self.notify("No message selected", severity="warning")
            return []
        return [uid]

    def action_mark(self) -> None:
        uid = self._highlighted_uid()
        if uid is None:
            return
        self.marked ^= {uid}
        self._update_row(uid)
        table = self.query_one("#messages", DataTable)
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))
        self.update_topbar()

    def _unmark(self, uids: list[int]) -> None:
        self.marked.difference_update(uids)
        for uid in uids:
            self._update_row(uid)
        self.update_topbar()

    def action_flag(self) -> None:
        uids = self._targets()
        if uids:
            # Several: flag them all unless all are flagged already (then unflag).
            self.set_flag(uids, "\\Flagged", not all(self.summaries[u].flagged for u in uids))

    def action_toggle_read(self) -> None:
        uids = self._targets()
        if uids:
            self.set_flag(uids, "\\Seen", not all(self.summaries[u].seen for u in uids))

    @work(group="flags")
    async def set_flag(self, uids: list[int], flag: str, add: bool) -> None:
        try:
            await self.client.reader.store_flags(uids, flag, add=add)
        except Exception as exc:
            self.client.report(exc)
            return
        changed = 0
        for uid in uids:
            summary = self.summaries.get(uid)
            if summary is None:
                continue
            changed += (flag in summary.flags) != add
            if add:
                summary.flags.add(flag)
            else:
                summary.flags.discard(flag)
        self._unmark(uids)
        if flag == "\\Seen" and changed:
            self._adjust_unseen(self.folder, -changed if add else changed)

    def action_move(self) -> None:
        uids = self._targets()
        if not uids:
            return
        names = [f.name for f in self.folders if f.name != self.folder
                 and "\\Noselect" not in f.flags]  # fmt: skip

        def chosen(folder: str | None) -> None:
            if folder:
                self.move_to(uids, folder)

        what = "Move to…" if len(uids) == 1 else f"Move {len(uids)} messages to…"
        self.app.push_screen(ChooseFolder(what, names), chosen)

    def action_delete(self) -> None:
        uids = self._targets()
        if not uids:
            return
        trash = find_special(self.folders, "\\Trash", "Trash")
        if self.folder != trash:
            self.move_to(uids, trash)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.delete_for_good(uids)

        what = "this message" if len(uids) == 1 else f"these {len(uids)} messages"
        self.app.push_screen(Confirm(f"Delete {what} for good?", "Delete"), confirmed)

    @work(group="flags")
    async def move_to(self, uids: list[int], folder: str) -> None:
        try:
            await self.client.reader.move(uids, folder)
        except Exception as exc:
            self.client.report(exc)
            return
        for uid in uids:
            self._forget(uid)
        self.notify(f"Moved to {folder}" if len(uids) == 1
                    else f"{len(uids)} messages moved to {folder}", timeout=3)  # fmt: skip
        self.refresh_counts()

    @work(group="flags")
    async def delete_for_good(self, uids: list[int]) -> None:
        try:
            await self.client.reader.delete_permanently(uids)
        except Exception as exc:
            self.client.report(exc)
            return
        for uid in uids:
            self._forget(uid)
        self.refresh_counts()

    def _forget(self, uid: int) -> None:
        table = self.query_one("#messages", DataTable)
        if str(uid) in {k.value for k in table.rows}:
            table.remove_row(str(uid))
        self.summaries.pop(uid, None)
        self.marked.discard(uid)
        if uid in self.all_uids:
            self.all_uids.remove(uid)
        if self.opened and self.opened[0] == uid:
            self.show_empty()
            self.query_one("#reader-body", Static).update("")
        self.update_topbar()

    @work(exclusive=True, group="counts")
    async def refresh_counts(self) -> None:
        try:
            self.folders = await self.client.reader.folders()
        except Exception as exc:
            self.client.report(exc)
            return
        self.fill_tree()
        self.update_topbar()

    def action_refresh(self) -> None:
        self.refresh_all()

    def action_page(self, step: int) -> None:
        pages = max(1, -(-len(self.all_uids) // PAGE_SIZE))
        new = self.page + step
        if 0 <= new < pages:
            self.load_page(new)

    @work(exclusive=True, group="load")
    async def load_page(self, page: int | None = None) -> None:
        try:
            await self._load_page(page)
        except Exception as exc:
            self.client.report(exc)

    def action_search(self) -> None:
        def search(text: str | None) -> None:
            if text is None:
                return
            self.search_text = text.strip()
            self.page = 0
            self.load_folder()

        self.app.push_screen(Prompt(f"Search {self.folder} (server SEARCH)", self.search_text),
                             search)  # fmt: skip

    def action_clear_search(self) -> None:
        if self.marked:
            self._unmark(sorted(self.marked))
            return
        if self.search_text:
            self.search_text = ""
            self.load_folder()

    def action_save_attachments(self) -> None:
        if self.opened is None or not self.opened[1].attachments:
            self.notify("The open message has no attachment", severity="warning")
            return
        message = self.opened[1]
        downloads = Path.home() / "Downloads"
        default = str(downloads if downloads.is_dir() else Path.cwd())

        def save(directory: str | None) -> None:
            if not directory:
                return
            try:
                target = Path(directory).expanduser()
                saved = [save_attachment(a, target) for a in message.attachments]
            except OSError as exc:
                self.notify(f"Cannot save: {exc.strerror or exc}", severity="error")
                return
            self.notify("Saved " + ", ".join(str(p) for p in saved), timeout=8)

        self.app.push_screen(Prompt("Save attachments in which directory?", default), save)

    def action_open_attachment(self) -> None:
        """Open an attachment with the system viewer (xdg-open), from a private copy that is
        removed when the viewer is done or the client quits (`client_tui.viewer`)."""
        if self.opened is None or not self.opened[1].attachments:
            self.notify("The open message has no attachment", severity="warning")
            return
        attachments = self.opened[1].attachments
        viewer = shutil.which("xdg-open") or shutil.which("open")
        if viewer is None:
            self.notify("No system viewer (xdg-open) here; save it with w", severity="warning")
            return

        def chosen(name: str | None) -> None:
            attachment = next((a for a in attachments if a.filename == name), None)
            if attachment is not None and viewer is not None:
                self.run_worker(self._view(attachment, viewer), group="viewer")

        if len(attachments) == 1:
            chosen(attachments[0].filename)
        else:
            names = [a.filename for a in attachments]
            self.app.push_screen(ChooseFolder("Open which attachment?", names), chosen)

    async def _view(self, attachment: Attachment, viewer: str) -> None:
        try:
            await self.client.viewer_copies.open(attachment, viewer)
        except OSError as exc:
            self.notify(f"Cannot open {attachment.filename}: {exc.strerror or exc}",
                        severity="error")  # fmt: skip

    # -- writing ---------------------------------------------------------------------------------

    def action_compose(self) -> None:
        self.app.push_screen(ComposeScreen(Draft(sender=self.client.account_address)))

    def action_to_patient(self) -> None:
        from client_tui.patient_screen import PatientDocumentScreen

        self.app.push_screen(PatientDocumentScreen())

    def action_catalogue(self) -> None:
        from client_tui.catalogue import open_catalogue  # issue 10: the apps catalogue

        open_catalogue(self.app)

    def _opened_or_warn(self) -> tuple[int, ReadMessage] | None:
        if self.opened is None:
            self.notify("Open a message first (Enter)", severity="warning")
        return self.opened

    def action_reply(self) -> None:
        self._reply(to_all=False)

    def action_reply_all(self) -> None:
        self._reply(to_all=True)

    def _reply(self, *, to_all: bool) -> None:
        opened = self._opened_or_warn()
        if opened is None:
            return
        uid, message = opened
        draft = reply_draft(message, self.client.account_address, to_all=to_all)

        def sent(done: bool | None) -> None:
            if done:
                self.set_flag([uid], "\\Answered", True)

        title = "Reply to all" if to_all else "Reply"
        self.app.push_screen(ComposeScreen(draft, title), sent)

    def action_forward(self) -> None:
        opened = self._opened_or_warn()
        if opened is not None:
            draft = forward_draft(opened[1], self.client.account_address)
            self.app.push_screen(ComposeScreen(draft, "Forward"))

    def action_help(self) -> None:
        self.app.push_screen(Help())

    async def action_quit(self) -> None:
        await self.client.sign_out()
        self.app.exit()
