// The office seat map (issue 13): a click on a seat, or Enter or Space on a focused seat,
// puts its id into the form field the map names (data-input) and submits the form with the
// button named by data-submit (the hub re-renders the page with the seat selected). Seats
// the map shows as taken, held or of another pool are not chosen. After the page comes back,
// the seat just chosen gets the keyboard focus again, so choosing works without a mouse.
(function () {
  "use strict";
  var KEY = "tessera-seatpick";

  function choose(seat) {
    var map = seat.closest("[data-input]");
    var state = seat.getAttribute("data-state");
    if (!map || (state !== "free" && state !== "selected")) return;
    var form = document.getElementById(map.getAttribute("data-form"));
    var field = form && form.elements[map.getAttribute("data-input")];
    var button = document.getElementById(map.getAttribute("data-submit"));
    if (!field || !button) return;
    field.value = picked(field.value, seat.getAttribute("data-seat-id"),
                         parseInt(map.getAttribute("data-max") || "1", 10));
    try { sessionStorage.setItem(KEY, map.getAttribute("data-input")); } catch (e) { /* private mode */ }
    form.requestSubmit(button);
  }

  // A map for several seats (a party side by side: data-max > 1) keeps their ids comma-separated in
  // the order chosen: a click adds a seat (the oldest goes when the map is full), a second click on
  // a chosen seat gives it back. A map for one seat takes the seat clicked.
  function picked(value, id, max) {
    if (!(max > 1)) return id;
    var ids = value ? value.split(",") : [];
    var at = ids.indexOf(id);
    if (at >= 0) {
      ids.splice(at, 1);
    } else {
      ids.push(id);
      while (ids.length > max) ids.shift();
    }
    return ids.join(",");
  }

  function seatOf(event) {
    return event.target && event.target.closest ? event.target.closest("[data-seat-id]") : null;
  }

  document.addEventListener("click", function (event) {
    var seat = seatOf(event);
    if (seat) choose(seat);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" && event.key !== " ") return;
    var seat = seatOf(event);
    if (!seat) return;
    event.preventDefault();
    choose(seat);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var last = null;
    try { last = sessionStorage.getItem(KEY); sessionStorage.removeItem(KEY); } catch (e) { /* private mode */ }
    if (!last) return;
    var maps = document.querySelectorAll("[data-input]");
    for (var i = 0; i < maps.length; i++) {
      if (maps[i].getAttribute("data-input") !== last) continue;
      var picked = maps[i].querySelector('[data-state="selected"]');
      if (picked) picked.focus();
    }
  });
})();
