from vifit.cli.main import main

main()
