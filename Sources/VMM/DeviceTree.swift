/// A flattened device tree writer (Devicetree Specification v0.4, chapter 5: the DTB format,
/// version 17, compatible with 16): nodes with properties, serialised big-endian with a
/// string table and an empty memory reservation block.
public struct DeviceTree: Sendable {
    public struct Node: Sendable {
        public var name: String
        public var properties: [(String, [UInt8])] = []
        public var children: [Node] = []

        public init(_ name: String) { self.name = name }

        public mutating func property(_ name: String, _ value: [UInt8] = []) { properties.append((name, value)) }
        public mutating func property(_ name: String, string: String) { property(name, Array(string.utf8) + [0]) }
        public mutating func property(_ name: String, strings: [String]) { property(name, strings.flatMap { Array($0.utf8) + [0] }) }
        public mutating func property(_ name: String, cells: [UInt32]) { property(name, cells.flatMap(DeviceTree.bigEndian)) }
        /// A 64-bit value as two cells.
        public mutating func property(_ name: String, u64 value: UInt64) {
            property(name, cells: [UInt32(value >> 32), UInt32(truncatingIfNeeded: value)])
        }
        public mutating func child(_ node: Node) { children.append(node) }
    }

    public var root = Node("")

    public init() {}

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    static let magic: UInt32 = 0xD00D_FEED
    static let beginNode: UInt32 = 1, endNode: UInt32 = 2, prop: UInt32 = 3, end: UInt32 = 9

    /// The DTB bytes.
    public func serialized() -> [UInt8] {
        var structure: [UInt8] = []
        var strings: [UInt8] = []
        var offsets: [String: Int] = [:]
        func pad() { while structure.count % 4 != 0 { structure.append(0) } }
        func emit(_ node: Node) {
            structure += Self.bigEndian(Self.beginNode)
            structure += Array(node.name.utf8) + [0]
            pad()
            for (name, value) in node.properties {
                let offset: Int
                if let known = offsets[name] { offset = known } else {
                    offset = strings.count
                    offsets[name] = offset
                    strings += Array(name.utf8) + [0]
                }
                structure += Self.bigEndian(Self.prop) + Self.bigEndian(UInt32(value.count)) + Self.bigEndian(UInt32(offset))
                structure += value
                pad()
            }
            for child in node.children { emit(child) }
            structure += Self.bigEndian(Self.endNode)
        }
        emit(root)
        structure += Self.bigEndian(Self.end)
        let headerSize = 40
        let reservationOffset = headerSize              // 8-byte aligned
        let structureOffset = reservationOffset + 16    // one empty (0, 0) entry
        let stringsOffset = structureOffset + structure.count
        let total = stringsOffset + strings.count
        var blob: [UInt8] = []
        for field in [Self.magic, UInt32(total), UInt32(structureOffset), UInt32(stringsOffset), UInt32(reservationOffset),
                      17, 16, 0, UInt32(strings.count), UInt32(structure.count)] {
            blob += Self.bigEndian(field)
        }
        blob += [UInt8](repeating: 0, count: 16)
        blob += structure
        blob += strings
        return blob
    }
}
