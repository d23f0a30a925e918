// Swagger UI over this server's own OpenAPI document. Its files come from the
// swagger-ui-bundle package (/docs/assets), never a CDN, and this script is a file of its
// own so the page keeps the dashboard's policy of no inline script. No other document
// can be loaded into it (queryConfigEnabled stays off: ?url= is ignored).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  queryConfigEnabled: false,
  deepLinking: true,
});
