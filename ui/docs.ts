// The /docs page: Swagger UI (from the swagger-ui-dist package, served by the server itself) over
// this server's /openapi.json, with "try it" on and the key kept across reloads.
declare const SwaggerUIBundle: ((options: Record<string, unknown>) => unknown) & {
  presets: { apis: unknown };
};

SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  presets: [SwaggerUIBundle.presets.apis],
  tryItOutEnabled: true,
  persistAuthorization: true,
  deepLinking: true,
  defaultModelsExpandDepth: 0,
});
