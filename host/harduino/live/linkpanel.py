"""The dashboard's link panel: rows of a grey key beside its value, as fixed plain-text labels.

The panel is refreshed a few times a second but most of its values change far
less often, so each label's text is set only when its rendered text changed: a
label left alone costs no layout, where a rich-text table was laid out afresh
at every refresh.
"""

from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

PLAIN, ALARM, ALARM_BOLD = "", "color: #ff5050", "color: #ff5050; font-weight: bold"  # a value's look


class LinkPanel(QtWidgets.QWidget):
    """Shows (key, value, look) rows, top-left aligned; rows beyond those shown are hidden, not removed."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._grid = QtWidgets.QGridLayout()
        self._grid.setHorizontalSpacing(6)
        self._grid.setVerticalSpacing(0)
        self._grid.setColumnStretch(1, 1)
        outer.addLayout(self._grid)
        outer.addStretch(1)
        self._labels: list[tuple[QtWidgets.QLabel, QtWidgets.QLabel]] = []
        self._shown: list[tuple[str, str, str] | None] = []  # what each row's labels show now

    def show_rows(self, rows: list[tuple[str, str, str]]) -> None:
        """(key, value, look) rows in order; a label's text or look is set only when it differs."""
        while len(self._labels) < len(rows):
            key = QtWidgets.QLabel(textFormat=QtCore.Qt.PlainText, styleSheet="color: #999")
            value = QtWidgets.QLabel(textFormat=QtCore.Qt.PlainText, wordWrap=True)
            for column, label in enumerate((key, value)):  # the cell's whole width: the value wraps at its edge
                label.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
                self._grid.addWidget(label, len(self._labels), column)
            self._labels.append((key, value))
            self._shown.append(None)
        for i, (key_label, value_label) in enumerate(self._labels):
            row = rows[i] if i < len(rows) else None
            shown = self._shown[i]
            if row == shown:
                continue
            if row is not None:
                key, value, look = row
                if shown is None or key != shown[0]:
                    key_label.setText(key)
                if shown is None or value != shown[1]:
                    value_label.setText(value)
                if shown is None or look != shown[2]:
                    value_label.setStyleSheet(look)
            if (row is None) != (shown is None):
                key_label.setVisible(row is not None)
                value_label.setVisible(row is not None)
            self._shown[i] = row

    def rows(self) -> list[tuple[str, str]]:
        """(key, value) of the rows shown, read back from the labels."""
        return [(k.text(), v.text()) for (k, v), shown in zip(self._labels, self._shown) if shown is not None]

    def value(self, key: str) -> str | None:
        """The value shown beside `key`, None when no such row is shown."""
        return next((v for k, v in self.rows() if k == key), None)

    def look(self, key: str) -> str | None:
        """The look (PLAIN, ALARM, ALARM_BOLD) of the value beside `key`, None when no such row is shown."""
        return next((shown[2] for shown in self._shown if shown is not None and shown[0] == key), None)

    def text(self) -> str:
        """The rows as lines of `key: value`."""
        return "\n".join(f"{k}: {v}" if k else v for k, v in self.rows())
