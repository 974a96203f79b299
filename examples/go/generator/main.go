// Паттерн Генератор: данные генерируются в отдельной горутине, потребитель
// получает их из канала по одному.
package main

import "log"

func main() {
	// потребитель перебирает канал, пока генератор его не закроет
	for data := range generator([]int{1, 2, 3, 4}) {
		log.Println(data)
	}
}

// generator — генератор, который создает канал и сразу возвращает его
func generator(input []int) chan int {
	inputCh := make(chan int)

	// через отдельную горутину генератор отправляет данные в канал
	go func() {
		// закрываем канал по завершению горутины — это отправитель
		defer close(inputCh)

		// перебираем данные в слайсе
		for _, data := range input {
			// отправляем данные в канал inputCh
			inputCh <- data
		}
	}()

	// возвращаем канал inputCh
	return inputCh
}
