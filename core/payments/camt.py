"""camt.053 bank statements (BankToCustomerStatement, ISO 20022) read into plain records (B6).

A statement file comes from outside (the bank's portal, an upload): it is parsed as hostile
input. lxml runs without DTD loading, entity resolution or network access, with the huge-tree
guard on, and a file that declares a DOCTYPE at all is refused (a bank statement never has one:
that is how XXE and "billion laughs" files arrive). Every problem is one ValidationError naming
what is wrong; nothing is half read.

Versions: the namespaces `urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN` for NN 02 to 13. The
elements read here are the same in all of them except two, handled below: an entry's status
(`Sts` is text in .02, `Sts/Cd` from .06 on) and a party's name (`Dbtr/Nm` in .02,
`Dbtr/Pty/Nm` from .08 on).

One record per transaction: an entry (`Ntry`) with several transaction details (`TxDtls`, a
batch booking) gives one record per detail. A record's `reference` is what the bank identifies
the booking by (the entry's `AcctSvcrRef`, else its `NtryRef`), with `/n` for the n-th detail
of a batch; together with the account it is unique, so a file imported twice is recognised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from lxml import etree

from core.base.errors import ValidationError
from core.base.money import MAX_CENTS

MAX_FILE_BYTES = 5 * 1024 * 1024  # a month of a busy box office is well under 1 MiB
NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(0[2-9]|1[0-3])$")
_AMOUNT = re.compile(r"^(\d{1,9})(?:\.(\d{1,2}))?$")
_TOO_PRECISE = re.compile(r"^\d+\.\d{3,}$")
_DE = "Die Datei ist kein lesbarer Kontoauszug (camt.053)"


@dataclasses.dataclass(frozen=True)
class Transaction:
    """One booked transaction of a statement, as the bank reported it."""

    reference: str  # the bank's reference of the booking (unique per account)
    entry_ref: str  # the entry's own reference (AcctSvcrRef or NtryRef)
    direction: str  # 'credit' (money in) or 'debit' (money out)
    amount_cents: int  # positive
    currency: str
    booked_on: dt.date
    value_on: dt.date | None
    reversal: bool
    end_to_end_id: str | None
    remittance: str  # unstructured lines and the structured creditor reference, joined by spaces
    party_name: str | None  # the other side: the payer of a credit, the payee of a debit
    party_iban: str | None
    bank_code: str | None  # Domn/Fmly/SubFmly (e.g. PMNT-RDDT-UPDD) or the proprietary code
    return_reason: str | None  # RtrInf/Rsn/Cd
    fee_cents: int  # charges the bank reported on the transaction


@dataclasses.dataclass(frozen=True)
class Statement:
    message_id: str
    statement_id: str
    account_iban: str
    version: str  # '02', '08', ...
    created_at: str | None
    transactions: list[Transaction]
    skipped: int  # entries not booked (pending or information only): not read


def _refuse(problem: str, de: str | None = None) -> ValidationError:
    return ValidationError(f"not a camt.053 bank statement: {problem}", field="file",
                           detail_de=f"{_DE}: {de or problem}")


def parse(raw: bytes) -> Statement:
    """The statement in *raw*, or a ValidationError saying why it is not one we read."""
    if len(raw) > MAX_FILE_BYTES:
        raise _refuse(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                      f"die Datei ist größer als {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not raw.strip():
        raise _refuse("the file is empty", "die Datei ist leer")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                             dtd_validation=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(raw, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise _refuse(f"the XML is malformed ({str(exc)[:120]})", "das XML ist fehlerhaft") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _refuse("the file declares a DOCTYPE (refused: bank statements have none)",
                      "die Datei enthält eine DOCTYPE-Deklaration")
    namespace = etree.QName(root).namespace or ""
    match = NAMESPACE.match(namespace)
    if etree.QName(root).localname != "Document" or match is None:
        raise _refuse(f"the root element is {{{namespace}}}{etree.QName(root).localname}; expected a Document "
                      "of camt.053.001.02 to .13", "unbekannter Namensraum oder Wurzelelement")
    return _Reader(namespace, match.group(1)).statement(root)


class _Reader:
    def __init__(self, namespace: str, version: str) -> None:
        self.ns = {"c": namespace}
        self.version = version

    def find(self, node, path: str):
        return node.find(self._path(path), self.ns)

    def all(self, node, path: str) -> list:
        return node.findall(self._path(path), self.ns)

    def text(self, node, path: str) -> str | None:
        found = self.find(node, path)
        value = (found.text or "").strip() if found is not None else ""
        return value or None

    @staticmethod
    def _path(path: str) -> str:
        return "/".join(f"c:{step}" for step in path.split("/"))

    def statement(self, root) -> Statement:
        group = self.find(root, "BkToCstmrStmt")
        if group is None:
            raise _refuse("no BkToCstmrStmt element", "kein BkToCstmrStmt")
        statements = self.all(group, "Stmt")
        if len(statements) != 1:
            raise _refuse(f"{len(statements)} statements in the file; one is read at a time",
                          f"{len(statements)} Auszüge in der Datei; erwartet wird genau einer")
        stmt = statements[0]
        iban = self.text(stmt, "Acct/Id/IBAN")
        statement_id = self.text(stmt, "Id")
        message_id = self.text(group, "GrpHdr/MsgId")
        if not (iban and statement_id and message_id):
            raise _refuse("the statement needs GrpHdr/MsgId, Stmt/Id and Stmt/Acct/Id/IBAN",
                          "es fehlen GrpHdr/MsgId, Stmt/Id oder Stmt/Acct/Id/IBAN")
        transactions, skipped = [], 0
        for number, entry in enumerate(self.all(stmt, "Ntry"), start=1):
            if self._status(entry) != "BOOK":
                skipped += 1
                continue
            transactions.extend(self._entry(entry, number))
        references = [t.reference for t in transactions]
        if len(set(references)) != len(references):
            raise _refuse("two entries carry the same bank reference", "zwei Buchungen mit derselben Referenz")
        return Statement(message_id=message_id[:35], statement_id=statement_id[:35],
                         account_iban=iban.replace(" ", "").upper()[:34], version=self.version,
                         created_at=self.text(group, "GrpHdr/CreDtTm"), transactions=transactions,
                         skipped=skipped)

    def _status(self, entry) -> str | None:
        return self.text(entry, "Sts/Cd") or self.text(entry, "Sts")

    def _entry(self, entry, number: int) -> list[Transaction]:
        where = f"entry {number}"
        entry_ref = self.text(entry, "AcctSvcrRef") or self.text(entry, "NtryRef")
        if not entry_ref:
            raise _refuse(f"{where} has neither AcctSvcrRef nor NtryRef (no way to recognise it again)",
                          f"Buchung {number} hat weder AcctSvcrRef noch NtryRef")
        amount, currency = self._amount(self.find(entry, "Amt"), where)
        direction = {"CRDT": "credit", "DBIT": "debit"}.get(self.text(entry, "CdtDbtInd") or "")
        if direction is None:
            raise _refuse(f"{where}: CdtDbtInd must be CRDT or DBIT", f"Buchung {number}: CdtDbtInd fehlt")
        booked = self._date(entry, "BookgDt", where)
        if booked is None:
            raise _refuse(f"{where} has no booking date", f"Buchung {number} hat kein Buchungsdatum")
        common = {"entry_ref": entry_ref[:60], "direction": direction, "currency": currency, "booked_on": booked,
                  "value_on": self._date(entry, "ValDt", where),
                  "reversal": (self.text(entry, "RvslInd") or "").lower() == "true",
                  "bank_code": self._bank_code(entry)}
        details = self.all(entry, "NtryDtls/TxDtls")
        if not details:
            return [Transaction(reference=entry_ref[:60], amount_cents=amount, **common,
                                **self._details(None, direction, where))]
        if len(details) == 1:
            one = self._details(details[0], direction, where)
            return [Transaction(reference=entry_ref[:60], amount_cents=amount, **common, **one)]
        out = []
        for index, detail in enumerate(details, start=1):
            part, _ = self._amount(self.find(detail, "Amt") if self.find(detail, "Amt") is not None
                                   else self.find(detail, "AmtDtls/TxAmt/Amt"), f"{where}, transaction {index}")
            out.append(Transaction(reference=f"{entry_ref[:55]}/{index}", amount_cents=part, **common,
                                   **self._details(detail, direction, f"{where}, transaction {index}")))
        return out

    def _details(self, detail, direction: str, where: str) -> dict:
        if detail is None:
            return {"end_to_end_id": None, "remittance": "", "party_name": None, "party_iban": None,
                    "return_reason": None, "fee_cents": 0}
        party = "Dbtr" if direction == "credit" else "Cdtr"
        name = self.text(detail, f"RltdPties/{party}/Pty/Nm") or self.text(detail, f"RltdPties/{party}/Nm")
        lines = [(e.text or "").strip() for e in self.all(detail, "RmtInf/Ustrd")]
        lines += [(e.text or "").strip() for e in self.all(detail, "RmtInf/Strd/CdtrRefInf/Ref")]
        e2e = self.text(detail, "Refs/EndToEndId")
        fees = sum(self._amount(e, where + ", charges")[0] for e in self.all(detail, "Chrgs/Rcrd/Amt"))
        if not fees and self.find(detail, "Chrgs/TtlChrgsAndTaxAmt") is not None:
            fees = self._amount(self.find(detail, "Chrgs/TtlChrgsAndTaxAmt"), where + ", charges")[0]
        return {"end_to_end_id": None if not e2e or e2e.upper() == "NOTPROVIDED" else e2e[:35],
                "remittance": " ".join(line for line in lines if line)[:500],
                "party_name": name[:140] if name else None,
                "party_iban": (self.text(detail, f"RltdPties/{party}Acct/Id/IBAN") or "")[:34] or None,
                "return_reason": self.text(detail, "RtrInf/Rsn/Cd"), "fee_cents": fees}

    def _amount(self, node, where: str) -> tuple[int, str]:
        if node is None:
            raise _refuse(f"{where} has no amount", f"{where}: Betrag fehlt")
        text, currency = (node.text or "").strip(), node.get("Ccy") or ""
        if _TOO_PRECISE.match(text):
            raise _refuse(f"{where}: the amount {text[:30]} has more than two decimals",
                          f"{where}: der Betrag {text[:30]} hat mehr als zwei Nachkommastellen")
        found = _AMOUNT.match(text)
        if found is None or not re.fullmatch(r"[A-Z]{3}", currency):
            raise _refuse(f"{where}: {text[:30]!r} {currency[:5]!r} is not an amount with a currency",
                          f"{where}: {text[:30]!r} ist kein Betrag mit Währung")
        cents = int(found.group(1)) * 100 + int((found.group(2) or "0").ljust(2, "0"))
        if cents > MAX_CENTS:
            raise _refuse(f"{where}: the amount {text} is above the limit", f"{where}: Betrag {text} zu hoch")
        return cents, currency

    def _date(self, entry, path: str, where: str) -> dt.date | None:
        raw = self.text(entry, f"{path}/Dt") or self.text(entry, f"{path}/DtTm")
        if raw is None:
            return None
        try:
            return dt.date.fromisoformat(raw[:10])
        except ValueError:
            raise _refuse(f"{where}: {path} {raw[:30]!r} is not a date", f"{where}: {path} ist kein Datum") from None

    def _bank_code(self, entry) -> str | None:
        parts = [self.text(entry, "BkTxCd/Domn/Cd"), self.text(entry, "BkTxCd/Domn/Fmly/Cd"),
                 self.text(entry, "BkTxCd/Domn/Fmly/SubFmlyCd")]
        if all(parts):
            return "-".join(parts)[:40]
        proprietary = self.text(entry, "BkTxCd/Prtry/Cd")
        return proprietary[:40] if proprietary else None
