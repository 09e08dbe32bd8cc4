from birdbalance.cli import main

main(prog_name="birdbalance")
