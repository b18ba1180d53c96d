-- A library: text with holes, rendered in the importing template's environment.
return {
  snippet = "lib: {{A}}+{{B}}",
  with_x = "x={{X}}",
}
