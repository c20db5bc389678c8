#!/usr/bin/env bash
# Builds what the app needs: `components`, `host`, or (default) both.
source "$(dirname "$0")/lib.sh"
case "${1:-all}" in
  components) build_components ;;
  host) build_host ;;
  all) build_components; build_host ;;
  *) echo "usage: scripts/build.sh [components|host|all]" >&2; exit 2 ;;
esac
