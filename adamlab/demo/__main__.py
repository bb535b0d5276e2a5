from adamlab.demo import main

main()
