-- Hostile: runs a command while loading.
os.execute("touch /tmp/ferry-lua-sandbox-pwned")
