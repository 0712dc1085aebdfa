import COpenBLAS

/// Every matrix product of the project goes through these two calls (OpenBLAS `cblas_sgemm`).
public enum BLAS {
    /// Number of OpenBLAS threads for this process (1 keeps actors from fighting over cores).
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }

    /// OpenBLAS's build configuration and the kernel it picked for this CPU (e.g. `Haswell`, `SkylakeX`, `Zen`).
    public static var library: (configuration: String, kernel: String) {
        (String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces), String(cString: openblas_get_corename()))
    }

    /// C ← alpha·op(A)·op(B) + beta·C on raw row-major pointers.
    /// `op(A)` is `m × k`, `op(B)` is `k × n`, C is `m × n`; lda/ldb/ldc are row strides.
    @inline(__always)
    public static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
