import Glibc

/// The VM as the API sees it: its configuration until `InstanceStart`, then the running
/// machine's control. Requests come from the API thread (`handle`); the main thread builds
/// and runs the machine when asked (`waitForStart`, `started`, `startFailed`), because
/// building it opens files, and after its lock-down the API thread can open none.
public final class VMController: @unchecked Sendable {
    // @unchecked: every stored property below is only touched under `condition`.
    public enum State: Equatable { case notStarted, running, paused }

    public let instanceID: String
    /// The Firecracker API version whose paths, bodies and status codes this serves.
    public static let firecrackerAPIVersion = "1.10.0"
    public static let vmmVersion = "0.2.0"

    private let condition = Condition()
    private var resources: VMResources
    private var control: MachineControl?
    /// InstanceStart handed to the main thread, and its answer.
    private var startRequest: Next?
    private var startResult: Result<Void, APIFault>?
    private var starting = false
    /// A termination signal that arrived before the machine ran.
    private var terminatedBy: Int32?
    /// Checks the API thread asked the main thread to make (they open files).
    private var jobs: [MainThreadJob] = []
    /// `--kernel-store`, for boot sources naming a stored kernel.
    let kernelStore: String?
    /// volt-vmm's working directory when it started: relative paths in requests (snapshot
    /// files) are taken against it, as Firecracker does.
    let workingDirectory: String

    private final class MainThreadJob {
        let body: () -> APIFault?
        var done = false
        var fault: APIFault?
        init(_ body: @escaping () -> APIFault?) { self.body = body }
    }

    public init(resources: VMResources, instanceID: String, kernelStore: String? = nil) {
        self.resources = resources
        self.instanceID = instanceID
        self.kernelStore = kernelStore
        workingDirectory = WorkingDirectory.current
    }

    public var state: State {
        condition.withLock {
            guard let control else { return .notStarted }
            return control.currentState == .paused ? .paused : .running
        }
    }

    var stateName: String {
        switch state {
        case .notStarted: return "Not started"
        case .running: return "Running"
        case .paused: return "Paused"
        }
    }

    // MARK: - The main thread's side

    /// What the main thread is to do next.
    public enum Next {
        case start(VMResources)
        /// PUT /snapshot/load (or `run --restore`): build the VM from a snapshot.
        case restore(SnapshotLoad)
        /// A termination signal came before InstanceStart: end, removing the socket.
        case terminate(signal: Int32)
    }

    /// Blocks until a client asks for InstanceStart (or `start()` was called) or a
    /// termination signal comes.
    /// Runs the checks the API thread hands over meanwhile.
    func waitForStart() -> Next {
        while true {
            let step = condition.withLock { () -> (next: Next?, job: MainThreadJob?) in
                while startRequest == nil && terminatedBy == nil && jobs.isEmpty { condition.wait() }
                if let terminatedBy { return (.terminate(signal: terminatedBy), nil) }
                if let startRequest { return (startRequest, nil) }
                return (nil, jobs.removeFirst())
            }
            if let next = step.next { return next }
            if let job = step.job {
                let fault = job.body()   // outside the lock: it may take a while (an open)
                condition.withLock {
                    job.fault = fault
                    job.done = true
                    condition.broadcast()
                }
            }
        }
    }

    /// Runs `check` on the main thread, which may still open files (this thread may
    /// not), and waits for it: how a PUT checks its paths as Firecracker does, at once.
    /// Before start only (the main thread then waits for InstanceStart).
    func onMainThread(_ what: String, _ check: @escaping () -> APIFault?) throws(APIFault) {
        let job = MainThreadJob(check)
        try condition.withLock { () throws(APIFault) in
            guard control == nil, !starting else { throw APIFault.notAllowed(what, starting: starting) }
            guard terminatedBy == nil else { throw APIFault("\(what): volt-vmm is stopping") }
            jobs.append(job)
            condition.broadcast()
            while !job.done { condition.wait() }
        }
        if let fault = job.fault { throw fault }
    }

    var terminationSignal: Int32? { condition.withLock { terminatedBy } }

    /// A termination signal before the machine runs.
    func terminate(signal: Int32) {
        condition.withLock {
            terminatedBy = signal
            condition.broadcast()
        }
    }

    /// Starts without a request (the command line named a kernel).
    public func start() {
        condition.withLock {
            starting = true
            startRequest = .start(resources)
            condition.broadcast()
        }
    }

    /// The machine runs: the waiting InstanceStart gets its 204.
    public func started(_ control: MachineControl) {
        condition.withLock {
            self.control = control
            starting = false
            startRequest = nil
            startResult = .success(())
            condition.broadcast()
        }
    }

    /// Building the machine failed before it ran: the InstanceStart gets a 400 and the VM
    /// stays not started (the client may fix the configuration and try again).
    public func startFailed(_ error: any Error) {
        condition.withLock {
            startRequest = nil
            starting = false
            startResult = .failure(error as? APIFault ?? APIFault("InstanceStart failed: \(error)"))
            condition.broadcast()
        }
    }

    // MARK: - The API thread's side

    /// The configuration, for a change before start; refused once started.
    func configure(_ what: String, _ change: (inout VMResources) throws(APIFault) -> Void) throws(APIFault) {
        try condition.withLock { () throws(APIFault) in
            guard control == nil, !starting else { throw APIFault.notAllowed(what, starting: starting) }
            try change(&resources)
        }
    }

    public var configuration: VMResources { condition.withLock { resources } }

    /// InstanceStart: hands the configuration to the main thread and waits for the machine
    /// to run (or fail to).
    func instanceStart() throws(APIFault) {
        try condition.withLock { () throws(APIFault) in
            guard control == nil, !starting else { throw APIFault("InstanceStart: the microVM is already \(starting ? "starting" : "running")") }
            guard resources.bootSource != nil else {
                throw APIFault("InstanceStart needs a boot source: PUT /boot-source with kernel_image_path first")
            }
            starting = true
            startResult = nil
            startRequest = .start(resources)
            condition.broadcast()
            while startResult == nil { condition.wait() }
            if case let .failure(fault) = startResult! { throw fault }
        }
    }

    /// Restores from a snapshot without a request (`run --restore`).
    public func startRestore(_ load: SnapshotLoad) {
        condition.withLock {
            starting = true
            startRequest = .restore(load)
            condition.broadcast()
        }
    }

    /// PUT /snapshot/load: hands the snapshot to the main thread and waits for the VM to
    /// run (or be ready paused), or fail to. Only a microVM with nothing configured.
    func snapshotLoad(_ load: SnapshotLoad) throws(APIFault) {
        try condition.withLock { () throws(APIFault) in
            guard control == nil, !starting else { throw APIFault.notAllowed("PUT /snapshot/load", starting: starting) }
            guard resources.bootSource == nil, resources.drives.isEmpty, resources.networkInterfaces.isEmpty, resources.entropy == nil else {
                throw APIFault("PUT /snapshot/load needs a microVM with nothing configured (the snapshot brings its own machine and devices)")
            }
            starting = true
            startResult = nil
            startRequest = .restore(load)
            condition.broadcast()
            while startResult == nil { condition.wait() }
            if case let .failure(fault) = startResult! { throw fault }
        }
    }

    /// After a restore: the configuration GET /vm/config shows is the snapshot's.
    public func restored(_ resources: VMResources) {
        condition.withLock { self.resources = resources }
    }

    /// The running machine, or a fault naming `what` and why it needs one.
    func running(_ what: String) throws(APIFault) -> MachineControl {
        try condition.withLock { () throws(APIFault) in
            guard let control else { throw APIFault("\(what) needs a started microVM: PUT /actions InstanceStart first") }
            return control
        }
    }
}
