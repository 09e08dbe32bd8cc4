from birdbalance.command import main

main()
