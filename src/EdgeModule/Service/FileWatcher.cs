namespace EdgeSlm.EdgeModule.Service;

/// <summary>Calls back once a file has been written, replaced or renamed into place and has settled.</summary>
public sealed class FileWatcher : IDisposable
{
    /// <summary>Editors and copies write in several steps: the file is read once it has been quiet this long.</summary>
    private const int SettleMilliseconds = 500;

    private readonly FileSystemWatcher _watcher;
    private readonly Timer _debounce;

    public FileWatcher(string path, Action<string> changed)
    {
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName | NotifyFilters.CreationTime,
        };
        _debounce = new Timer(_ => changed(path), null, Timeout.Infinite, Timeout.Infinite);
        FileSystemEventHandler onChange = (_, _) => _debounce.Change(SettleMilliseconds, Timeout.Infinite);
        _watcher.Changed += onChange;
        _watcher.Created += onChange;
        _watcher.Deleted += onChange;
        _watcher.Renamed += (_, _) => _debounce.Change(SettleMilliseconds, Timeout.Infinite);
        _watcher.EnableRaisingEvents = true;
    }

    public void Dispose()
    {
        _watcher.Dispose();
        _debounce.Dispose();
    }
}
