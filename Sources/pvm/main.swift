print("pvm")
