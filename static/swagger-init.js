// Boots the vendored Swagger UI for /docs without an inline script (CSP: script-src 'self').
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
