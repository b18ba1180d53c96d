return {
  name = "t_bad",
  formats = {"q4"} = 3,
}
