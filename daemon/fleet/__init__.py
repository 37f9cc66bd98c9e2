"""What is declared and what runs: stack sources, the live inventory, the property reader and its inverse, stack-file edits."""
