import LinearAlgebra

// Named groups of the two-tower model's trainable buffers. The trainer keeps four groups of the
// same shape: the parameters themselves, their gradients and Adam's two moments, so a kernel
// reads `grads.userTower.w1` next to `params.userTower.w1`. The groups only hold references to
// the matrices: reading a field costs what indexing an array of them did, without the bounds
// check.

/// One tower's buffers (the parameters of `TwoTowerModel.Tower`, or their gradients or moments).
struct TowerBuffers {
    let w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix

    /// The tower's parameters themselves (the same matrices, not copies).
    init(_ t: TwoTowerModel.Tower) {
        w1 = t.w1; b1 = t.b1; w2 = t.w2; b2 = t.b2
    }

    /// Zeroed buffers shaped like `t`'s.
    init(zerosLike t: TowerBuffers) {
        w1 = Matrix(rows: t.w1.rows, cols: t.w1.cols); b1 = Matrix(rows: t.b1.rows, cols: t.b1.cols)
        w2 = Matrix(rows: t.w2.rows, cols: t.w2.cols); b2 = Matrix(rows: t.b2.rows, cols: t.b2.cols)
    }

    /// In `TwoTowerModel.Tower.parameters` order.
    var all: [Matrix] { [w1, b1, w2, b2] }
}

/// The embedding tables, updated lazily: only the rows a batch touched are stepped.
enum EmbeddingTable: Int, CaseIterable {
    case user, item, feature
}

/// Every trainable buffer of a two-tower model by name: the three embedding tables and the two
/// towers' MLPs.
struct TwoTowerBuffers {
    let userEmb: Matrix, itemEmb: Matrix, featEmb: Matrix
    let userTower: TowerBuffers, itemTower: TowerBuffers

    /// The model's parameters themselves (the same matrices, not copies).
    init(_ model: TwoTowerModel) {
        userEmb = model.userEmb; itemEmb = model.itemEmb; featEmb = model.featEmb
        userTower = TowerBuffers(model.user); itemTower = TowerBuffers(model.item)
    }

    /// Zeroed buffers shaped like `p`'s (gradients, Adam moments).
    init(zerosLike p: TwoTowerBuffers) {
        userEmb = Matrix(rows: p.userEmb.rows, cols: p.userEmb.cols)
        itemEmb = Matrix(rows: p.itemEmb.rows, cols: p.itemEmb.cols)
        featEmb = Matrix(rows: p.featEmb.rows, cols: p.featEmb.cols)
        userTower = TowerBuffers(zerosLike: p.userTower); itemTower = TowerBuffers(zerosLike: p.itemTower)
    }

    /// One embedding table by name.
    @inline(__always)
    func embedding(_ t: EmbeddingTable) -> Matrix {
        switch t {
        case .user: return userEmb
        case .item: return itemEmb
        case .feature: return featEmb
        }
    }

    /// Every buffer, in `TwoTowerModel.parameters` order (checkpoints, snapshots, gradient checks).
    var all: [Matrix] { [userEmb, itemEmb, featEmb] + userTower.all + itemTower.all }
}
