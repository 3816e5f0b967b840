#!/bin/sh
# cmake-js-as-node-gyp.sh — lets prebuildify (which only knows node-gyp) build with cmake-js:
# `prebuildify --napi --strip --node-gyp ./scripts/cmake-js-as-node-gyp.sh`. prebuildify calls it as
# `<this> rebuild --target=<node version> --devdir=... --arch=x64 --release`; cmake-js would read
# --target as a build target, so only the configuration is passed on. The output lands in
# build/Release, where prebuildify picks it up. STRUCTURA_CUDA / STRUCTURA_CUDA_ARCHS apply as usual.
cfg=Release
for a in "$@"; do
  case "$a" in
  --debug) cfg=Debug ;;
  esac
done
if [ "${STRUCTURA_CUDA:-}" = "OFF" ] || [ "${STRUCTURA_CUDA:-}" = "0" ]; then
  exec cmake-js rebuild --config "$cfg" --CDSTRUCTURA_CUDA=OFF
fi
exec cmake-js rebuild --config "$cfg"
