// Паттерн Конвейер: генератор -> прибавить 1 -> умножить на 2 -> вывод.
// Каждый этап — отдельная горутина со своим выходным каналом, поэтому
// этапы работают параллельно, а порядок данных сохраняется.
package main

import "log"

func main() {
	input := []int{1, 2, 3, 4, 5, 6}

	// канал отмены: закрывается при выходе из main и останавливает все этапы
	doneCh := make(chan struct{})
	defer close(doneCh)

	inputCh := generator(doneCh, input)

	// выход одного этапа — вход следующего
	resultCh := multiply(doneCh, add(doneCh, inputCh))

	for res := range resultCh {
		log.Println(res)
	}
}

// generator отправляет данные из слайса в канал
func generator(doneCh chan struct{}, input []int) chan int {
	inputCh := make(chan int)

	go func() {
		defer close(inputCh)

		for _, data := range input {
			select {
			case <-doneCh:
				return
			case inputCh <- data:
			}
		}
	}()

	return inputCh
}

// add прибавляет 1 к каждому значению из inputCh
func add(doneCh chan struct{}, inputCh chan int) chan int {
	addRes := make(chan int)

	go func() {
		// этап — отправитель в addRes, поэтому он его и закрывает
		defer close(addRes)

		for data := range inputCh {
			result := data + 1

			select {
			case <-doneCh:
				return
			case addRes <- result:
			}
		}
	}()

	return addRes
}

// multiply умножает на 2 каждое значение из inputCh
func multiply(doneCh chan struct{}, inputCh chan int) chan int {
	multiplyRes := make(chan int)

	go func() {
		defer close(multiplyRes)

		for data := range inputCh {
			result := data * 2

			select {
			case <-doneCh:
				return
			case multiplyRes <- result:
			}
		}
	}()

	return multiplyRes
}
