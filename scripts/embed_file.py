#!/usr/bin/env python3
"""Writes a C++ header holding a file's text as a raw string literal (meson custom_target).

Usage: embed_file.py INPUT OUTPUT SYMBOL
"""
import sys

source, output, symbol = sys.argv[1:4]
text = open(source, encoding="utf-8").read()
delimiter = "embed"
assert f"){delimiter}\"" not in text, "pick another raw-string delimiter"
with open(output, "w", encoding="utf-8") as out:
    out.write("#pragma once\n// Generated from " + source.split("/")[-1] + " by scripts/embed_file.py.\n")
    out.write(f'inline constexpr const char* {symbol} = R"{delimiter}({text}){delimiter}";\n')
