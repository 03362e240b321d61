from posezoo.cli import main

main()
