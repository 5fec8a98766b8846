// Boots the vendored Swagger UI for /docs without an inline script (CSP: script-src 'self').
// No deep links: they put a link inside each operation's expand button (a control inside
// a control, which screen readers and keyboards cannot use).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: false });
});
