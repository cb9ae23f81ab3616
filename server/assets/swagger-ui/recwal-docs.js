// recwal's Swagger UI start-up (served at /docs by `recwal serve`).
//
// The page and its assets need no token; every API call does when the
// server has one. The token typed in the form above the UI is kept in
// sessionStorage (this tab only) and used twice: to fetch /openapi.json (a
// protected route like every other but /healthz and /readyz), and to
// pre-fill Swagger's Authorize dialog, which then adds
// `Authorization: Bearer <token>` to every "Try it out" call. Logging out in
// that dialog stops the calls from carrying it.
(function () {
  "use strict";
  var KEY = "recwal-token";
  var form = document.getElementById("recwal-token");
  var input = document.getElementById("recwal-token-value");
  var state = document.getElementById("recwal-token-state");
  var token = sessionStorage.getItem(KEY) || "";
  input.value = token;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    window.location.reload();
  });
  var ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Only the document's own fetch: the API calls carry the token that
    // the Authorize dialog holds.
    requestInterceptor: function (request) {
      var url = new URL(request.url, window.location.href);
      if (token && url.origin === window.location.origin && url.pathname === "/openapi.json") {
        request.headers.Authorization = "Bearer " + token;
      }
      return request;
    },
    responseInterceptor: function (response) {
      var url = new URL(response.url, window.location.href);
      if (url.pathname === "/openapi.json" && response.status === 401) {
        state.textContent = token
          ? "The server refused this token (401)."
          : "This server needs a token: type it above.";
      }
      return response;
    },
    onComplete: function () {
      if (token) {
        ui.preauthorizeApiKey("bearer", token);
      }
    },
  });
  window.ui = ui;
})();
