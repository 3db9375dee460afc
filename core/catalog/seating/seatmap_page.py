"""A preview page for a seat map: the SVG inline at the page's width, and a few lines of
script showing how a client binds its own handlers (click or Enter/Space toggles a free
seat to selected and names it below the map). Used by people to look at a plan and by the
browser tests; the desk, office and shop bring their own pages."""

from __future__ import annotations

from core.catalog.seating.seatmap import esc

SCRIPT = """
const out = document.getElementById('picked');
function pick(seat) {
  if (!seat || !['free', 'selected'].includes(seat.dataset.state)) return;
  seat.dataset.state = seat.dataset.state === 'free' ? 'selected' : 'free';
  out.value = seat.dataset.seatId + ' ' + seat.getAttribute('aria-label');
  out.dataset.picked = seat.dataset.seatId;
  seat.setAttribute('aria-pressed', String(seat.dataset.state === 'selected'));
}
document.querySelector('svg.tm').addEventListener('click', e => pick(e.target.closest('[data-seat-id]')));
document.querySelector('svg.tm').addEventListener('keydown', e => {
  if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(e.target.closest('[data-seat-id]')); }
});
"""

CSS = ("body{margin:0;font-family:'DejaVu Sans',Arial,sans-serif;background:#f3f3f3}"
       "h1{font-size:18px;margin:8px 12px}main svg{display:block;width:100%;height:auto;background:#fff}"
       "output{display:block;margin:8px 12px;min-height:1.2em}"
       "[data-state=selected] .body{fill:#111111;stroke-width:3}")


def preview_html(svg: str, title: str, lang: str = "de") -> str:
    """A whole HTML page around *svg* (already escaped by the renderer); *title* is escaped here."""
    return (f'<!doctype html><html lang="{esc(lang)}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{CSS}</style></head><body>'
            f'<h1>{esc(title)}</h1><main>{svg}</main><output id="picked" aria-live="polite"></output>'
            f'<script>{SCRIPT}</script></body></html>')
