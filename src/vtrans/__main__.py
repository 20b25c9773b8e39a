from vtrans.cli import main

main()
