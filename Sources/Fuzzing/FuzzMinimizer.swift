/// Shrinks a failing operation sequence to a small one that still fails: Zeller and
/// Hildebrandt's ddmin ("Simplifying and isolating failure-inducing input", TSE 2002), removing
/// chunks of halving size while `fails` still holds, then single operations.
public enum FuzzMinimizer {
    public static func minimize<T>(_ input: [T], fails: ([T]) -> Bool) -> [T] {
        var current = input
        var chunks = 2
        while current.count >= 2 {
            let size = (current.count + chunks - 1) / chunks
            var reduced = false
            var start = 0
            while start < current.count {
                var candidate = current
                candidate.removeSubrange(start ..< min(start + size, current.count))
                if fails(candidate) {
                    current = candidate
                    chunks = max(chunks - 1, 2)
                    reduced = true
                    break
                }
                start += size
            }
            if !reduced {
                if size == 1 { break }
                chunks = min(chunks * 2, current.count)
            }
        }
        return current
    }
}
