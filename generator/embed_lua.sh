#!/bin/sh
# Regenerate render_lua.h from render.lua (run after editing render.lua;
# test_generator fails while the two differ).
cd "$(dirname "$0")" || exit 1
{
  echo '/* generated from render.lua by embed_lua.sh: do not edit */'
  echo 'static const char q4gen_render_lua[] ='
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/  "/' -e 's/$/\\n"/' render.lua
  echo '  ;'
} > render_lua.h
