// Паттерн Fan-Out: несколько воркеров читают из одного входного канала,
// чтобы увеличить пропускную способность самого тяжёлого этапа.
// Результаты воркеров затем объединяются через Fan-In.
package main

import (
	"log"
	"sort"
	"sync"
)

func main() {
	input := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

	doneCh := make(chan struct{})
	defer close(doneCh)

	inputCh := generator(doneCh, input)

	// несколько воркеров забирают данные из одного канала inputCh
	channels := fanOut(doneCh, inputCh, 3)

	// какой воркер какое значение обработает — заранее неизвестно,
	// поэтому собираем результаты и сортируем перед выводом
	var results []int
	for res := range fanIn(doneCh, channels...) {
		results = append(results, res)
	}
	sort.Ints(results)

	for _, res := range results {
		log.Println(res)
	}
	log.Println("Обработано значений:", len(results))
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

// fanOut запускает numWorkers воркеров на одном входном канале
func fanOut(doneCh chan struct{}, inputCh chan int, numWorkers int) []chan int {
	channels := make([]chan int, numWorkers)

	for i := 0; i < numWorkers; i++ {
		channels[i] = square(doneCh, inputCh)
	}

	return channels
}

// square — воркер: возводит в квадрат значения из inputCh
func square(doneCh chan struct{}, inputCh chan int) chan int {
	resultCh := make(chan int)

	go func() {
		defer close(resultCh)

		for data := range inputCh {
			select {
			case <-doneCh:
				return
			case resultCh <- data * data:
			}
		}
	}()

	return resultCh
}

// fanIn объединяет каналы воркеров в один
func fanIn(doneCh chan struct{}, resultChs ...chan int) chan int {
	finalCh := make(chan int)

	var wg sync.WaitGroup

	for _, ch := range resultChs {
		chClosure := ch

		wg.Add(1)

		go func() {
			defer wg.Done()

			for data := range chClosure {
				select {
				case <-doneCh:
					return
				case finalCh <- data:
				}
			}
		}()
	}

	go func() {
		wg.Wait()
		close(finalCh)
	}()

	return finalCh
}
